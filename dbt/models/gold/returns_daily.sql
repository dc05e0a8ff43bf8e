with

daily_bars as (

    select
        symbol,
        trade_date,
        open,
        close

    from {{ ref('ohlc_daily') }}

),

with_previous as (

    select
        *,
        lag(close) over (partition by symbol order by trade_date) as previous_close

    from daily_bars

),

final as (

    select
        symbol,
        trade_date,
        open,
        close,
        previous_close,
        -- Multiply before dividing: exact whenever the true result is representable.
        100 * (close - open) / open as intraday_return_pct,
        100 * (close - previous_close) / previous_close as close_to_close_return_pct,
        ln(close / previous_close) as log_return

    from with_previous

)

select * from final
