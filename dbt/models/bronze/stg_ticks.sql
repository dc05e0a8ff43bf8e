with

raw_ticks as (

    select * from {{ source('bronze', 'raw_ticks') }}

),

renamed as (

    select
        cast(symbol as varchar) as symbol,
        cast(price as double) as price,
        cast(size as bigint) as size,
        cast(event_time as {{ marketpulse.type_timestamp_tz() }}) as event_time,
        cast(ingest_time as {{ marketpulse.type_timestamp_tz() }}) as ingest_time,
        cast(source as varchar) as source,
        cast(producer_id as varchar) as producer_id,
        cast(seq as bigint) as seq,
        cast(schema_version as integer) as schema_version,
        cast(_object_key as varchar) as object_key,
        cast(_loaded_at as {{ marketpulse.type_timestamp_tz() }}) as loaded_at

    from raw_ticks

)

select * from renamed
