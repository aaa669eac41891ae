//! ngrok's macro reference, one function at a time, with the values the reference documents
//! (or that the algorithm's standard check values give).

use crate::actions::result_keys;
use crate::cel::expr::Expr;
use crate::cel::names::Names;
use crate::cel::vars::Scope;
use crate::testutil::*;
use crate::Phase;

fn names(phase: Phase) -> Names<'static> {
    Names {
        phase,
        results: result_keys(),
        supplies: crate::intel::Supplies::ALL,
        secrets: None,
        locals: &[],
    }
}

/// Asserts that every expression compiles and is true on a plain request.
fn all_true(exprs: &[&str]) {
    let e = engine("");
    let r = req("GET /x?a=1", &[]);
    let st = state(&e, "1.1.1.1");
    for src in exprs {
        let x = Expr::compile(src, names(Phase::Request))
            .unwrap_or_else(|p| panic!("{src} does not compile: {p:?}"));
        let scope = Scope::new(&r, None, &st, result_keys());
        assert_eq!(x.eval_bool(&scope), Ok(true), "{src}");
    }
}

#[test]
fn hashes_in_hex() {
    all_true(&[
        "hash.md5('hello') == '5d41402abc4b2a76b9719d911017c592'",
        "'hello'.md5() == '5d41402abc4b2a76b9719d911017c592'",
        "hash.sha1('hello') == 'aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d'",
        "hash.sha256('hello') == '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'",
        "'hello'.sha512().startsWith('9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca7')",
        "hash.crc32('123456789') == 'cbf43926'",
        "hash.crc64('123456789') == '995dc9bbdf1939fa'",
        "hash.xxhash64('') == 'ef46db3751d8e999'",
        "''.xxhash64().size() == 16",
    ]);
}

#[test]
fn json_query_strings_and_urls() {
    all_true(&[
        r#"json.decode('{"a":[1,2.5,"x"],"b":null}').a[1] == 2.5"#,
        r#"'{"n":3}'.decodeJson().n == 3"#,
        r#"json.encode({'b': 1, 'a': [true, null, 'x']}) == '{"a":[true,null,"x"],"b":1}'"#,
        r#"[1, 'a'].encodeJson() == '[1,"a"]'"#,
        r#"utility.json_encode([1]) == '[1]'"#,
        r#"'{"x":1}'.isJson() && !'{x'.isJson()"#,
        "queryString.decode('a=1&a=2&b=x+y') == {'a': ['1', '2'], 'b': ['x y']}",
        "'?c=%2F'.decodeQueryString().c == ['/']",
        "queryString.encode({'b': 'x y', 'a': ['1', '2']}) == 'a=1&a=2&b=x+y'",
        "{'n': 5}.encodeQueryString() == 'n=5'",
        "'a=1&b=2'.isQueryString() && !'a=%zz'.isQueryString() && !'a=1;b=2'.isQueryString()",
        "url.escape('a b&c/d') == 'a+b%26c%2Fd'",
        "'a+b%26c'.unescapeUrl() == 'a b&c'",
        "url.parse('https://u:p@example.com:8443/p/q?x=1#f').host == 'example.com'",
        "url.parse('https://u:p@example.com:8443/p/q?x=1#f').port == 8443",
        "'https://example.com/p/q?x=1#f'.parseUrl().path == '/p/q'",
        "'https://example.com/?x=1&x=2'.parseUrl().query_params.x == ['1', '2']",
        "url.parse('http://example.com').port == 80",
        "'https://example.com'.isURL() && !'not a url'.isURL() && !'mailto:a@b'.isURL()",
        "'hi'.encodeBase64() == 'aGk=' && 'aGk='.decodeBase64() == 'hi'",
        "b64.encode('hi') == 'aGk=' && b64.decode('aGk') == b'hi'",
        "base64.decode('aGk=').size() == 2 && string(base64.decode('aGk=')) == 'hi'",
    ]);
}

#[test]
fn strings_and_lists_as_ngrok_documents_them() {
    all_true(&[
        // ngrok's split: the limit keeps the first pieces.
        "'hello mellow'.split(' ', 1) == ['hello']",
        "'hello,mellow,hi'.split(',', 2) == ['hello', 'mellow']",
        "'hello,mellow,hi'.split(',') == ['hello', 'mellow', 'hi']",
        "'hello,mellow'.split(',', -1) == ['hello', 'mellow']",
        "'a  b\\tc'.split() == ['a', 'b', 'c']",
        "'abc'.split('') == ['a', 'b', 'c']",
        "'abc'.charAt(1) == 'b'",
        "'hello'.indexOf('l') == 2 && 'hello'.lastIndexOf('l') == 3",
        "'TacoCat'.lowerAscii() == 'tacocat' && 'TacoCat'.upperAscii() == 'TACOCAT'",
        "'Straße'.upper() == 'STRASSE' && 'ÀB'.lower() == 'àb'",
        "'  x '.trim() == 'x' && trim('  x ') == 'x'",
        "'aXbX'.replace('X', '-') == 'a-b-'",
        "'hello'.substring(1, 3) == 'el'",
        "'x-%s-%d'.format(['y', 2]) == 'x-y-2'",
        "'abc'.reverse() == 'cba'",
        r#"strings.quote('a"b') == '"a\\"b"'"#,
        "['a', 'b'].join('-') == 'a-b' && ['a', 'b'].join() == 'ab'",
        "[2, 1, 3].sort() == [1, 2, 3]",
        "[3, 1, 2].sortBy(x, -x) == [3, 2, 1]",
        "[1, 2, 2, 1].distinct() == [1, 2]",
        "[[1], [2, [3]]].flatten() == [1, 2, [3]]",
        "[1, 2, 3, 4].slice(1, 3) == [2, 3]",
        "lists.range(3) == [0, 1, 2]",
        "rand.int(3, 3) == 3 && rand.double() < 1.0 && rand.double() >= 0.0",
        "timestamp('2024-03-01T10:20:30Z').getDayOfMonth() == 0",
        "timestamp('2024-03-01T10:20:30Z').getDate() == 1",
    ]);
}

#[test]
fn request_cookies_are_one_cookie() {
    let e = engine("");
    let r = req("GET /", &[("cookie", "sid=abc; theme=dark; sid=second")]);
    let st = state(&e, "1.1.1.1");
    let scope = Scope::new(&r, None, &st, result_keys());
    for src in [
        "getReqCookie('sid').value == 'abc' && getReqCookie('theme').name == 'theme'",
        "getReqCookie('none').value == '' && !hasReqCookie('none') && hasReqCookie('sid')",
        "req.cookies.sid.size() == 2",
    ] {
        let x = Expr::compile(src, names(Phase::Request)).unwrap();
        assert_eq!(x.eval_bool(&scope), Ok(true), "{src}");
    }
}

#[test]
fn response_cookies_and_unknown_names() {
    let e = engine("");
    let r = req("GET /", &[]);
    let st = state(&e, "1.1.1.1");
    let res = http::Response::builder()
        .header("set-cookie", "sid=abc; Path=/; HttpOnly")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let scope = Scope::new(&r, Some(&res), &st, result_keys());
    for src in [
        "hasResCookie('sid') && !hasResCookie('other')",
        "getResCookie('sid').value == 'abc' && getResCookie('sid').name == 'sid'",
        "getResCookie('other').value == ''",
    ] {
        let x = Expr::compile(src, names(Phase::Response)).unwrap();
        assert_eq!(x.eval_bool(&scope), Ok(true), "{src}");
    }
    let refused = Expr::compile("hasResCookie('sid')", names(Phase::Request)).unwrap_err();
    assert!(
        refused[0].contains("only available in on_http_response"),
        "{refused:?}"
    );
    let unknown = Expr::compile("hash.nope('x') == ''", names(Phase::Request)).unwrap_err();
    assert!(
        unknown[0].contains("unknown function `hash.nope`"),
        "{unknown:?}"
    );
    let bad_call = Expr::compile("rand.int(5, 1) == 1", names(Phase::Request)).unwrap();
    let scope = Scope::new(&r, None, &st, result_keys());
    assert!(
        bad_call.eval_bool(&scope).is_err(),
        "min above max is an error"
    );
}

#[test]
fn pricing_page_utility_names_of_the_method_forms() {
    all_true(&[
        r#"utility.list_encode_json([1, 'a']) == '[1,"a"]'"#,
        r#"utility.object_encode_json({'a': 1}) == '{"a":1}'"#,
        "utility.object_encode_query_string({'a': 'b c'}) == 'a=b+c'",
        "utility.string_decode_base64('aGk=') == 'hi'",
        "utility.string_decode_json('[1]') == [1]",
        "utility.string_decode_query_string('a=1&a=2') == {'a': ['1', '2']}",
        "utility.string_encode_base64('hi') == 'aGk='",
        "utility.string_escape_url('a b/c') == 'a+b%2Fc'",
        "utility.string_is_json('[1]') && !utility.string_is_json('[')",
        "utility.string_is_query_string('a=1') && !utility.string_is_query_string('a=%zz')",
        "utility.string_is_url('https://x.example/') && !utility.string_is_url('nope')",
        "utility.string_parse_url('https://x.example:8443/p').port == 8443",
        "utility.string_unescape_url('a%20b') == 'a b'",
    ]);
}
