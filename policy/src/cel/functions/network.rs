//! IP functions: `inCidrRange`, `inCidrRanges`, `isPrivateIp`.

use super::args::{arg, ok_bool, str_arg, Out};
use crate::run::facts::canonical_ip;
use cel::{FunctionContext, Value};
use ipnet::IpNet;
use std::net::IpAddr;

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok().map(canonical_ip)
}

pub(super) fn in_cidr_range<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let ip = parse_ip(str_arg(f, 0)?);
    let net: Option<IpNet> = str_arg(f, 1)?.parse().ok();
    ok_bool(matches!((ip, net), (Some(ip), Some(net)) if net.contains(&ip)))
}

pub(super) fn in_cidr_ranges<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let Some(ip) = parse_ip(str_arg(f, 0)?) else {
        return ok_bool(false);
    };
    let Value::List(list) = Value::try_from(arg(f, 1)?)? else {
        return Err(f.error("expected a list of CIDRs"));
    };
    let hit = list.iter().any(|c| match c {
        Value::String(s) => s.parse::<IpNet>().is_ok_and(|n| n.contains(&ip)),
        _ => false,
    });
    ok_bool(hit)
}

pub(super) fn is_private_ip<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    ok_bool(parse_ip(str_arg(f, 0)?).is_some_and(private))
}

/// RFC 1918, loopback, link-local, CGNAT and IPv6 unique-local/link-local addresses.
fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}
