//! Names looked up in the catalogs' caches, for a search that cannot
//! afford a query to find its own tables: the schema of the function
//! called, and the relations and text-search configuration in it.

use std::ffi::CStr;

use pgrx::pg_sys;

/// The schema of the function `fcinfo` calls.
pub fn function_schema(fcinfo: pg_sys::FunctionCallInfo) -> Option<pg_sys::Oid> {
    // SAFETY: pgrx hands a #[pg_extern] function the fcinfo PostgreSQL
    // called it with, whose flinfo names the function; get_func_namespace
    // reads the syscache and returns InvalidOid for a function it does not
    // find.
    let schema = unsafe {
        let flinfo = fcinfo.as_ref()?.flinfo.as_ref()?;
        pg_sys::get_func_namespace(flinfo.fn_oid)
    };
    (schema != pg_sys::InvalidOid).then_some(schema)
}

/// The relation `name` of `schema`.
pub fn relation(schema: pg_sys::Oid, name: &CStr) -> Option<pg_sys::Oid> {
    // SAFETY: get_relname_relid reads the syscache with a NUL-terminated
    // name, and returns InvalidOid for none.
    let relid = unsafe { pg_sys::get_relname_relid(name.as_ptr(), schema) };
    (relid != pg_sys::InvalidOid).then_some(relid)
}

/// The text-search configuration `name` of `schema`.
pub fn text_search_config(schema: pg_sys::Oid, name: &CStr) -> Option<pg_sys::Oid> {
    // SAFETY: as namespace.c's get_ts_config_oid looks a configuration up:
    // the syscache by name (a NUL-terminated string) and schema; InvalidOid
    // for none.
    let config = unsafe {
        pg_sys::GetSysCacheOid(
            pg_sys::SysCacheIdentifier::TSCONFIGNAMENSP as i32,
            // pg_ts_config's oid, its first column in every major
            1,
            pg_sys::Datum::from(name.as_ptr()),
            pg_sys::Datum::from(schema),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
        )
    };
    (config != pg_sys::InvalidOid).then_some(config)
}

/// The name of `schema`.
pub fn schema_name(schema: pg_sys::Oid) -> Option<String> {
    // SAFETY: get_namespace_name returns a palloc'd NUL-terminated copy,
    // or NULL for a schema that is gone.
    unsafe {
        let name = pg_sys::get_namespace_name(schema);
        if name.is_null() {
            return None;
        }
        Some(CStr::from_ptr(name).to_string_lossy().into_owned())
    }
}

/// The function `name` of `schema` that takes no argument.
pub fn function_without_arguments(schema: pg_sys::Oid, name: &CStr) -> Option<pg_sys::Oid> {
    // SAFETY: as namespace.c looks a function up by its signature: the
    // syscache by name, argument types (an empty oidvector, palloc'd here)
    // and schema; InvalidOid for none.
    let function = unsafe {
        let no_arguments = pg_sys::buildoidvector(std::ptr::null(), 0);
        pg_sys::GetSysCacheOid(
            pg_sys::SysCacheIdentifier::PROCNAMEARGSNSP as i32,
            // pg_proc's oid, its first column in every major
            1,
            pg_sys::Datum::from(name.as_ptr()),
            pg_sys::Datum::from(no_arguments),
            pg_sys::Datum::from(schema),
            pg_sys::Datum::from(0),
        )
    };
    (function != pg_sys::InvalidOid).then_some(function)
}

/// What the function `function`, which takes no argument, returns: an oid.
pub fn call_returning_oid(function: pg_sys::Oid) -> pg_sys::Oid {
    // SAFETY: a call through fmgr by oid with no argument; what it raises
    // pgrx's guard turns into the same PostgreSQL error. The caller names
    // a function that returns an oid type (regconfig).
    let result = unsafe { pg_sys::OidFunctionCall0Coll(function, pg_sys::InvalidOid) };
    pg_sys::Oid::from(result.value() as u32)
}
