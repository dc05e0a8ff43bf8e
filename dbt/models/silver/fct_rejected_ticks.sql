{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['object_key', 'loaded_at'],
        on_schema_change='fail',
    )
}}

{#- Every raw row that did not become a silver tick, with the reason. Together with fct_ticks it
    accounts for every raw row exactly once. Increments recompute whole loaded objects, keyed by
    (object_key, loaded_at), so reprocessing an object replaces its rejects instead of adding to them.
    fct_ticks is read only in incremental runs; the depends_on line keeps it a parent in every run.
    Its rows do not record loads without rejects, so its progress is kept in
    fct_rejected_ticks_watermark (a child: referenced by name, not ref(), which would be a cycle). #}

-- depends_on: {{ ref('fct_ticks') }}

with

validated as (

    select * from {{ ref('int_ticks_validated') }}

),

{% if is_incremental() -%}
kept_ticks as (

    select
        symbol,
        event_time,
        producer_id,
        seq,
        object_key as kept_object_key,
        loaded_at as kept_loaded_at

    from {{ ref('fct_ticks') }}

),

{% endif -%}
batch as (

    select * from validated
    {%- if is_incremental() %}

    where loaded_at > {{ marketpulse.load_watermark('loaded_at', marketpulse.rejected_ticks_watermark()) }}
    {%- endif %}

),

invalid as (

    select * from batch

    where reject_reason is not null

),

valid_ranked as (

    select
        *,
        -- Same order as fct_ticks, so copy 1 of a batch is the kept tick when the kept tick is here.
        row_number() over (
            partition by symbol, event_time, producer_id, seq
            order by loaded_at, object_key, ingest_time, price, size, source
        ) as copy_number

    from batch

    where reject_reason is null

),

{% if is_incremental() -%}
-- The kept copy of an identity may come from a load before this batch.
with_kept_copy as (

    select
        valid_ranked.*,
        kept_ticks.kept_object_key,
        kept_ticks.kept_loaded_at

    from valid_ranked

    inner join kept_ticks
        on
            valid_ranked.symbol = kept_ticks.symbol
            and valid_ranked.event_time = kept_ticks.event_time
            and valid_ranked.producer_id = kept_ticks.producer_id
            and valid_ranked.seq = kept_ticks.seq

),

{% else -%}
-- Every load is in the batch: copy 1 is the kept copy, no join needed.
with_kept_copy as (

    select
        *,
        object_key as kept_object_key,
        loaded_at as kept_loaded_at

    from valid_ranked

),

{% endif -%}
duplicates as (

    select
        symbol,
        price,
        size,
        event_time,
        ingest_time,
        source,
        producer_id,
        seq,
        schema_version,
        object_key,
        loaded_at,
        'duplicate' as reject_reason

    from with_kept_copy

    where
        copy_number > 1
        or kept_object_key <> object_key
        or kept_loaded_at <> loaded_at

),

unioned as (

    select * from invalid

    union all

    select * from duplicates

),

final as (

    select
        reject_reason,
        symbol,
        price,
        size,
        event_time,
        ingest_time,
        source,
        producer_id,
        seq,
        schema_version,
        object_key,
        loaded_at

    from unioned

)

select * from final
