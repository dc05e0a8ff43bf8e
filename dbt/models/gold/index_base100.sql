{%- set base_date = var('index_base_date') -%}

with

daily_bars as (

    select
        symbol,
        trade_date,
        close

    from {{ ref('ohlc_daily') }}

),

eligible as (

    select * from daily_bars
    {%- if base_date %}

    where trade_date >= cast('{{ base_date }}' as date)
    {%- endif %}

),

with_base as (

    select
        *,
        -- The base is the symbol's first close on or after the chosen start date.
        first_value(close) over (
            partition by symbol
            order by trade_date
            rows between unbounded preceding and current row
        ) as base_close,
        min(trade_date) over (partition by symbol) as base_date

    from eligible

),

final as (

    select
        symbol,
        trade_date,
        100 * close / base_close as index_value,
        close,
        base_close,
        base_date

    from with_base

)

select * from final
