//! `rand.double()` and `rand.int(min, max)`.

use super::args::{int_arg, ok_value, Out};
use cel::{FunctionContext, Value};
use rand::Rng;

/// `rand.double()`: uniform in [0, 1).
pub(super) fn double<'c, 'v>(_f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    ok_value(Value::Float(rand::thread_rng().gen::<f64>()))
}

/// `rand.int(min, max)`: uniform in [min, max], both included; min above max is an error
/// (ngrok's reference words it the other way round, a typo).
pub(super) fn int<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let (min, max) = (int_arg(f, 0)?, int_arg(f, 1)?);
    if min > max {
        return Err(f.error(format!("rand.int: min {min} is above max {max}")));
    }
    ok_value(Value::Int(rand::thread_rng().gen_range(min..=max)))
}
