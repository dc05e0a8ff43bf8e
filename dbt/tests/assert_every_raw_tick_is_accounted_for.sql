-- Nothing vanishes: every raw row is either a silver tick or a rejected row, exactly once.
with

raw_count as (

    select count(*) as row_count from {{ ref('stg_ticks') }}

),

kept_count as (

    select count(*) as row_count from {{ ref('fct_ticks') }}

),

rejected_count as (

    select count(*) as row_count from {{ ref('fct_rejected_ticks') }}

),

final as (

    select
        raw_count.row_count as raw_rows,
        kept_count.row_count as kept_rows,
        rejected_count.row_count as rejected_rows

    from raw_count
    cross join kept_count
    cross join rejected_count

    where raw_count.row_count <> kept_count.row_count + rejected_count.row_count

)

select * from final
