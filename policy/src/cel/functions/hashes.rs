//! Hashes as lowercase hex: `hash.md5(s)`, `hash.sha1`, `hash.sha256`, `hash.sha512`,
//! `hash.crc32`, `hash.crc64`, `hash.xxhash64`, and the member forms (`s.sha256()`).
//!
//! CRC-32 is the IEEE polynomial (Go's `crc32.ChecksumIEEE`), CRC-64 is ECMA-182 as Go's
//! `crc64.ECMA` table computes it (CRC-64/XZ), xxHash64 uses seed 0; all are written
//! big-endian in hex, zero-padded to their width.

use super::args::{ok_str, str_arg, Out};
use cel::FunctionContext;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use std::hash::Hasher;

/// A hash from bytes to its hex text.
pub(super) type Hash = fn(&[u8]) -> String;

/// The hash functions by their name after `hash.`.
pub(super) const HASHES: &[(&str, Hash)] = &[
    ("md5", |b| hex::encode(Md5::digest(b))),
    ("sha1", |b| hex::encode(Sha1::digest(b))),
    ("sha256", |b| hex::encode(Sha256::digest(b))),
    ("sha512", |b| hex::encode(Sha512::digest(b))),
    ("crc32", |b| format!("{:08x}", crc32fast::hash(b))),
    ("crc64", |b| {
        format!("{:016x}", crc::Crc::<u64>::new(&crc::CRC_64_XZ).checksum(b))
    }),
    ("xxhash64", |b| {
        let mut h = twox_hash::XxHash64::with_seed(0);
        h.write(b);
        format!("{:016x}", h.finish())
    }),
];

/// Runs `hash` on the string argument.
pub(super) fn run<'c, 'v>(
    f: &mut FunctionContext<'c, 'v>,
    hash: fn(&[u8]) -> String,
) -> Out<'c, 'v> {
    ok_str(hash(str_arg(f, 0)?.as_bytes()))
}
