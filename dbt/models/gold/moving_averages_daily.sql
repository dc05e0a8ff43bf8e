{%- set windows = marketpulse.int_list_var('moving_average_days') -%}

with

daily_bars as (

    select
        symbol,
        trade_date,
        close

    from {{ ref('ohlc_daily') }}

),

windows as (

    {{ marketpulse.rolling_windows(
        'daily_bars', windows, 'close', {'close_count': 'count', 'close_average': 'avg'}, keep=['close']
    ) }}

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
