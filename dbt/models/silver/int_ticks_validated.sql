{%- set watchlist = marketpulse.watchlist() -%}
{%- set tolerance_seconds = var('future_tolerance_seconds') | int -%}

with

staged as (

    select * from {{ ref('stg_ticks') }}

),

classified as (

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
        -- The first rule a row breaks; null when it breaks none. The order is part of the contract:
        -- a row with a null price is `missing_price`, never also `non_positive_price`.
        case
            when symbol is null then 'missing_symbol'
            when price is null then 'missing_price'
            when size is null then 'missing_size'
            when event_time is null then 'missing_event_time'
            when ingest_time is null then 'missing_ingest_time'
            when source is null then 'missing_source'
            when producer_id is null then 'missing_producer_id'
            when seq is null then 'missing_seq'
            when schema_version is null or schema_version <> 1 then 'unsupported_schema_version'
            when not {{ marketpulse.full_match('symbol', '^[A-Z][-A-Z0-9.]{0,9}$') }} then 'invalid_symbol'
            {%- if watchlist %}
            when symbol not in (
                {%- for symbol in watchlist %}
                '{{ symbol }}'{{ ',' if not loop.last }}
                {%- endfor %}
            ) then 'unknown_symbol'
            {%- endif %}
            when not {{ marketpulse.is_finite('price') }} then 'non_finite_price'
            when price <= 0 then 'non_positive_price'
            when size < 0 then 'negative_size'
            when seq < 0 then 'negative_seq'
            -- "Future" is judged against the load time, not the build time, so that a rebuild
            -- from scratch classifies every row exactly as the incremental run did.
            when event_time > {{ marketpulse.add_seconds('loaded_at', tolerance_seconds) }}
                then 'future_event_time'
        end as reject_reason

    from staged

)

select * from classified
