{%- set windows = marketpulse.int_list_var('moving_average_days') -%}

with

daily_bars as (

    select
        symbol,
        trade_date,
        close

    from {{ ref('ohlc_daily') }}

),

{% for window_days in windows -%}
window_{{ window_days }} as (

    select
        symbol,
        trade_date,
        {{ window_days }} as window_days,
        close,
        count(close) over (
            partition by symbol order by trade_date
            rows between {{ window_days - 1 }} preceding and current row
        ) as close_count,
        avg(close) over (
            partition by symbol order by trade_date
            rows between {{ window_days - 1 }} preceding and current row
        ) as close_average

    from daily_bars

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
        close_average as sma,
        close

    from windows

    -- Only full windows: an N-day average needs N trading dates.
    where close_count = window_days

)

select * from final
