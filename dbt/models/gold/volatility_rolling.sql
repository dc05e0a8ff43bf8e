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

{% for window_days in windows -%}
window_{{ window_days }} as (

    select
        symbol,
        trade_date,
        {{ window_days }} as window_days,
        count(log_return) over (
            partition by symbol order by trade_date
            rows between {{ window_days - 1 }} preceding and current row
        ) as return_count,
        var_samp(log_return) over (
            partition by symbol order by trade_date
            rows between {{ window_days - 1 }} preceding and current row
        ) as return_variance

    from daily_returns

),

{% endfor -%}
windows as (

    {% for window_days in windows -%}
    select * from window_{{ window_days }}
    {%- if not loop.last %}

    union all

    {% endif %}
    {%- endfor %}

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
