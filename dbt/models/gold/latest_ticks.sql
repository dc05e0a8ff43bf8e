{#- The newest tick of each symbol in silver: the health page compares it with when gold was published
    (tick → gold, measured) and with the archive's live quotes (how far gold trails them). A DuckDB
    view over fct_ticks costs one scan when gold is published. -#}

with

ticks as (

    select
        symbol,
        event_time,
        ingest_time,
        loaded_at

    from {{ ref('fct_ticks') }}

),

final as (

    select
        symbol,
        max(event_time) as last_event_time,
        max(ingest_time) as last_ingest_time,
        max(loaded_at) as last_loaded_at,
        count(*) as tick_count

    from ticks

    group by symbol

)

select * from final
