//! ngrok's CEL functions (`inCidrRange`, `hasReqHeader`, `base64.encode`, `json.decode`,
//! `hash.sha256`, …) and a `matches` whose regexes are compiled once. One table lists them all
//! (the compile-time name check reads the same table); each group lives in its own file.

mod args;
mod encoding;
mod hashes;
mod http;
mod network;
mod random;
mod text;

#[cfg(test)]
mod tests;

pub(crate) use text::SPLIT;

use crate::cel::names::{QUERY_PARAM, REQ_COOKIE, REQ_HEADER, RES_HEADER};
use args::{str_arg, Out};
use cel::{Context, FunctionContext};
use regex::Regex;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

/// The internal name `matches` calls are rewritten to at compile time.
pub(crate) const MATCHES: &str = "sluiceMatches";

/// Namespaces of the namespaced functions (`base64.encode`). `lists` and `strings` are cel's
/// extensions' (`lists.range`, `strings.quote`); `b64` and `utility` are the aliases ngrok's
/// pricing page lists.
pub(crate) const NAMESPACES: &[&str] = &[
    "base64",
    "b64",
    "basic_auth",
    "hash",
    "json",
    "queryString",
    "url",
    "rand",
    "utility",
    "lists",
    "strings",
];

/// Functions cel's extensions supply, for the compile-time check.
const EXTENSION_NAMES: &[&str] = &[
    "charAt",
    "indexOf",
    "lastIndexOf",
    "join",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "substring",
    "format",
    "reverse",
    "strings.quote",
    "slice",
    "flatten",
    "distinct",
    "sort",
    "lists.range",
];

type Func = Box<dyn for<'c, 'v> Fn(&mut FunctionContext<'c, 'v>) -> Out<'c, 'v> + Send + Sync>;

/// Every function this module adds, by the names policies call it with.
fn table() -> Vec<(&'static str, Func)> {
    let mut all: Vec<(&'static str, Func)> = vec![
        (MATCHES, Box::new(matches)),
        (SPLIT, Box::new(text::split)),
        ("inCidrRange", Box::new(network::in_cidr_range)),
        ("inCidrRanges", Box::new(network::in_cidr_ranges)),
        ("utility.in_cidr_range", Box::new(network::in_cidr_range)),
        ("utility.in_cidr_ranges", Box::new(network::in_cidr_ranges)),
        ("isPrivateIp", Box::new(network::is_private_ip)),
        ("hasReqHeader", Box::new(|f| http::has(f, REQ_HEADER))),
        ("getReqHeader", Box::new(|f| http::get(f, REQ_HEADER))),
        ("hasResHeader", Box::new(|f| http::has(f, RES_HEADER))),
        ("getResHeader", Box::new(|f| http::get(f, RES_HEADER))),
        ("hasQueryParam", Box::new(|f| http::has(f, QUERY_PARAM))),
        ("getQueryParam", Box::new(|f| http::get(f, QUERY_PARAM))),
        ("hasReqCookie", Box::new(|f| http::has(f, REQ_COOKIE))),
        ("getReqCookie", Box::new(http::get_req_cookie)),
        ("hasResCookie", Box::new(http::has_res_cookie)),
        ("getResCookie", Box::new(http::get_res_cookie)),
        ("lower", Box::new(|f| text::map_str(f, str::to_lowercase))),
        ("upper", Box::new(|f| text::map_str(f, str::to_uppercase))),
        ("base64.encode", Box::new(encoding::b64_encode)),
        ("base64.decode", Box::new(encoding::b64_decode)),
        ("b64.encode", Box::new(encoding::b64_encode)),
        ("b64.decode", Box::new(encoding::b64_decode)),
        ("utility.base64_encode", Box::new(encoding::b64_encode)),
        ("utility.base64_decode", Box::new(encoding::b64_decode)),
        ("encodeBase64", Box::new(encoding::b64_encode)),
        ("decodeBase64", Box::new(encoding::decode_base64_text)),
        ("basic_auth.encode", Box::new(encoding::basic_auth_encode)),
        (
            "utility.basic_auth_encode",
            Box::new(encoding::basic_auth_encode),
        ),
        ("json.encode", Box::new(encoding::json_encode)),
        ("json.decode", Box::new(encoding::json_decode)),
        ("utility.json_encode", Box::new(encoding::json_encode)),
        ("utility.json_decode", Box::new(encoding::json_decode)),
        ("encodeJson", Box::new(encoding::json_encode)),
        ("decodeJson", Box::new(encoding::json_decode)),
        ("isJson", Box::new(encoding::is_json)),
        ("queryString.encode", Box::new(encoding::query_encode)),
        ("queryString.decode", Box::new(encoding::query_decode)),
        (
            "utility.query_string_encode",
            Box::new(encoding::query_encode),
        ),
        (
            "utility.query_string_decode",
            Box::new(encoding::query_decode),
        ),
        ("encodeQueryString", Box::new(encoding::query_encode)),
        ("decodeQueryString", Box::new(encoding::query_decode)),
        ("isQueryString", Box::new(encoding::is_query_string)),
        ("url.escape", Box::new(encoding::url_escape)),
        ("url.unescape", Box::new(encoding::url_unescape)),
        ("url.parse", Box::new(encoding::url_parse)),
        ("utility.url_escape", Box::new(encoding::url_escape)),
        ("utility.url_unescape", Box::new(encoding::url_unescape)),
        ("utility.url_parse", Box::new(encoding::url_parse)),
        ("escapeUrl", Box::new(encoding::url_escape)),
        ("unescapeUrl", Box::new(encoding::url_unescape)),
        ("parseUrl", Box::new(encoding::url_parse)),
        ("isURL", Box::new(encoding::is_url)),
        ("rand.double", Box::new(random::double)),
        ("rand.int", Box::new(random::int)),
        ("utility.rand_double", Box::new(random::double)),
        ("utility.rand_int", Box::new(random::int)),
        // The pricing page's `utility.*` names of the method forms, called with the receiver
        // as the argument (`utility.string_is_json(s)` is `s.isJson()`).
        ("utility.list_encode_json", Box::new(encoding::json_encode)),
        (
            "utility.object_encode_json",
            Box::new(encoding::json_encode),
        ),
        (
            "utility.object_encode_query_string",
            Box::new(encoding::query_encode),
        ),
        (
            "utility.string_decode_base64",
            Box::new(encoding::decode_base64_text),
        ),
        (
            "utility.string_decode_json",
            Box::new(encoding::json_decode),
        ),
        (
            "utility.string_decode_query_string",
            Box::new(encoding::query_decode),
        ),
        (
            "utility.string_encode_base64",
            Box::new(encoding::b64_encode),
        ),
        ("utility.string_escape_url", Box::new(encoding::url_escape)),
        ("utility.string_is_json", Box::new(encoding::is_json)),
        (
            "utility.string_is_query_string",
            Box::new(encoding::is_query_string),
        ),
        ("utility.string_is_url", Box::new(encoding::is_url)),
        ("utility.string_parse_url", Box::new(encoding::url_parse)),
        (
            "utility.string_unescape_url",
            Box::new(encoding::url_unescape),
        ),
    ];
    for (name, hash) in hashes::HASHES {
        let hash = *hash;
        let namespaced: &'static str = Box::leak(format!("hash.{name}").into_boxed_str());
        all.push((namespaced, Box::new(move |f| hashes::run(f, hash))));
        all.push((name, Box::new(move |f| hashes::run(f, hash))));
    }
    all
}

/// The CEL environment: the standard library and cel's strings and lists extensions (ngrok's
/// `charAt`, `indexOf`, `join`, `sort`, `sortBy`, `lists.range`, …).
pub(crate) fn env() -> cel::Env {
    let mut env = cel::Env::stdlib();
    // Only fails on a name declared twice, which the test below rules out.
    let strings = cel::extensions::strings(&mut env);
    let lists = cel::extensions::lists(&mut env);
    debug_assert!(strings.is_ok() && lists.is_ok(), "{strings:?} {lists:?}");
    env
}

/// Every function name a policy may call besides the standard library's: this module's and
/// cel's extensions'.
pub(crate) fn is_known(name: &str) -> bool {
    static NAMES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        let mut names: Vec<&str> = table().into_iter().map(|(n, _)| n).collect();
        names.extend(EXTENSION_NAMES);
        names
    });
    NAMES.contains(&name)
}

/// Adds the functions to the shared root context; returns the names cel refused (none: a test
/// checks that no name collides with a standard-library overload).
pub(crate) fn register(ctx: &mut Context<'static, 'static>) -> Vec<&'static str> {
    table()
        .into_iter()
        .filter_map(|(name, f)| ctx.add_function::<Func, Func>(name, f).err().map(|_| name))
        .collect()
}

/// Compiled regexes by pattern; literal patterns are put here at compile time.
static REGEXES: LazyLock<RwLock<HashMap<String, Arc<Regex>>>> = LazyLock::new(Default::default);
const REGEX_CACHE_LIMIT: usize = 4096;

/// The compiled regex for `pattern`, from the cache when it has been seen before.
pub(crate) fn regex(pattern: &str) -> Result<Arc<Regex>, regex::Error> {
    if let Some(re) = REGEXES.read().ok().and_then(|m| m.get(pattern).cloned()) {
        return Ok(re);
    }
    let re = Arc::new(Regex::new(pattern)?);
    if let Ok(mut m) = REGEXES.write() {
        if m.len() < REGEX_CACHE_LIMIT {
            m.insert(pattern.to_string(), Arc::clone(&re));
        }
    }
    Ok(re)
}

fn matches<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let text = str_arg(f, 0)?;
    let re = regex(str_arg(f, 1)?).map_err(|e| f.error(e))?;
    args::ok_bool(re.is_match(text))
}

#[cfg(test)]
mod registry_tests {
    #[test]
    fn every_function_registers() {
        let mut ctx = cel::Context::with_env(std::sync::Arc::new(super::env()));
        assert_eq!(super::register(&mut ctx), Vec::<&str>::new());
    }
}
