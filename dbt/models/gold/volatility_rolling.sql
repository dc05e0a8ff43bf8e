{%- set windows = marketpulse.int_list_var('volatility_window_days', minimum=2) -%}
{%- set periods_per_year = var('trading_days_per_year') | int -%}

with

daily_returns as (

    select
        symbol,
        trade_date,
        log_return

    from {{ ref('returns_daily') }}

),

windows as (

    {{ marketpulse.rolling_windows(
        'daily_returns', windows, 'log_return', {'return_count': 'count', 'return_variance': 'var_samp'}
    ) }}

),

final as (

    select
        symbol,
        trade_date,
        window_days,
        -- stddev of the last N daily log returns × sqrt(252), written as sqrt(variance × 252).
        sqrt(greatest(return_variance, 0) * {{ periods_per_year }}) as annualized_volatility,
        return_count

    from windows

    -- Only full windows: N log returns need N + 1 trading days.
    where return_count = window_days

)

select * from final
