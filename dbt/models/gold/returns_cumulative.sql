with

daily_returns as (

    select
        symbol,
        trade_date,
        close

    from {{ ref('returns_daily') }}

),

with_base as (

    select
        *,
        first_value(close) over (
            partition by symbol
            order by trade_date
            rows between unbounded preceding and current row
        ) as base_close,
        min(trade_date) over (partition by symbol) as base_date

    from daily_returns

),

final as (

    select
        symbol,
        trade_date,
        -- Growth of the close since the symbol's first trading date (0 on that date).
        100 * (close - base_close) / base_close as cumulative_return_pct,
        close,
        base_close,
        base_date

    from with_base

)

select * from final
