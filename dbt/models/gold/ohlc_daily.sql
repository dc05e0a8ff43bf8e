{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['symbol', 'trade_date'],
        on_schema_change='fail',
    )
}}

{#- Daily bars roll up the 1-minute bars: a minute never straddles two exchange dates, the first
    bar's open is the day's first trade and the last bar's close its last. -#}

with

minute_bars as (

    select * from {{ ref('ohlc_1m') }}

),

{% if is_incremental() -%}
changed_days as (

    select distinct
        symbol,
        trade_date

    from minute_bars

    where last_loaded_at > {{ marketpulse.load_watermark('last_loaded_at') }}

),

day_bars as (

    select minute_bars.*

    from minute_bars

    inner join changed_days
        on
            minute_bars.symbol = changed_days.symbol
            and minute_bars.trade_date = changed_days.trade_date

),

{% else -%}
day_bars as (

    select * from minute_bars

),

{% endif -%}
ordered as (

    select
        *,
        row_number() over (partition by symbol, trade_date order by bar_start) as position_in_day,
        count(*) over (partition by symbol, trade_date) as bars_in_day

    from day_bars

),

days as (

    select
        symbol,
        trade_date,
        max(case when position_in_day = 1 then open end) as open,
        max(high) as high,
        min(low) as low,
        max(case when position_in_day = bars_in_day then close end) as close,
        cast(sum(volume) as bigint) as volume,
        sum(notional) as notional,
        cast(sum(tick_count) as bigint) as tick_count,
        min(bar_start) as first_bar_start,
        max(bar_start) as last_bar_start,
        max(last_loaded_at) as last_loaded_at

    from ordered

    group by symbol, trade_date

),

final as (

    select
        symbol,
        trade_date,
        open,
        high,
        low,
        close,
        volume,
        notional / nullif(volume, 0) as vwap,
        tick_count,
        notional,
        first_bar_start,
        last_bar_start,
        last_loaded_at

    from days

)

select * from final
