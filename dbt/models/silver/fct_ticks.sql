{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['symbol', 'event_time', 'producer_id', 'seq'],
        on_schema_change='fail',
    )
}}

with

validated as (

    select * from {{ ref('int_ticks_validated') }}

),

new_ticks as (

    select
        symbol,
        event_time,
        producer_id,
        seq,
        price,
        size,
        ingest_time,
        source,
        object_key,
        loaded_at

    from validated

    where
        reject_reason is null
    {%- if is_incremental() %}
        and loaded_at > {{ marketpulse.load_watermark('loaded_at') }}
    {%- endif %}

),

{% if is_incremental() -%}
-- Ticks already kept for an identity that arrives again: they take part in the ranking below, so
-- that the first-loaded copy stays the one kept, exactly as a rebuild from scratch would choose.
kept_ticks as (

    select
        kept.symbol,
        kept.event_time,
        kept.producer_id,
        kept.seq,
        kept.price,
        kept.size,
        kept.ingest_time,
        kept.source,
        kept.object_key,
        kept.loaded_at

    from {{ this }} as kept

    where exists (
        select 1
        from new_ticks
        where
            new_ticks.symbol = kept.symbol
            and new_ticks.event_time = kept.event_time
            and new_ticks.producer_id = kept.producer_id
            and new_ticks.seq = kept.seq
    )

),

{% endif -%}
candidates as (

    select * from new_ticks
    {%- if is_incremental() %}

    union all

    select * from kept_ticks
    {%- endif %}

),

ranked as (

    select
        *,
        -- The tick identity is (symbol, event_time, producer_id, seq): seq counts per producer.
        -- The first-loaded copy wins; the remaining columns only break exact ties.
        row_number() over (
            partition by symbol, event_time, producer_id, seq
            order by loaded_at, object_key, ingest_time, price, size, source
        ) as copy_number

    from candidates

),

final as (

    select
        symbol,
        event_time,
        producer_id,
        seq,
        price,
        size,
        date_trunc('minute', event_time) as bar_start,
        {{ marketpulse.exchange_date('event_time') }} as trade_date,
        ingest_time,
        source,
        object_key,
        loaded_at

    from ranked

    where copy_number = 1

)

select * from final
