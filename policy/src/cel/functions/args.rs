//! Reading a function's arguments and building its result: the receiver counts as the first
//! argument, so `x.f(y)` and `f(x, y)` read alike.

use cel::common::types::{CelBool, CelString};
use cel::common::value::{CowVal, Val};
use cel::{ExecutionError, FunctionContext, Value};

/// What a function returns.
pub(super) type Out<'c, 'v> = Result<CowVal<'c, 'v>, ExecutionError>;

/// The `i`th argument, the receiver first.
pub(super) fn arg<'x>(
    f: &'x FunctionContext<'_, '_>,
    i: usize,
) -> Result<&'x dyn Val, ExecutionError> {
    f.this
        .iter()
        .chain(f.args.iter())
        .nth(i)
        .map(|c| c.as_ref() as &dyn Val)
        .ok_or_else(|| ExecutionError::invalid_argument_count(i + 1, f.args.len()))
}

/// How many arguments, the receiver included.
pub(super) fn count(f: &FunctionContext<'_, '_>) -> usize {
    usize::from(f.this.is_some()) + f.args.len()
}

/// The `i`th argument as a string.
pub(super) fn str_arg<'x>(
    f: &'x FunctionContext<'_, '_>,
    i: usize,
) -> Result<&'x str, ExecutionError> {
    let v = arg(f, i)?;
    <&str>::try_from(v).map_err(|_| f.error("expected a string argument"))
}

/// The `i`th argument as an owned value.
pub(super) fn value_arg(f: &FunctionContext<'_, '_>, i: usize) -> Result<Value, ExecutionError> {
    Value::try_from(arg(f, i)?)
}

/// The `i`th argument as an int.
pub(super) fn int_arg(f: &FunctionContext<'_, '_>, i: usize) -> Result<i64, ExecutionError> {
    match value_arg(f, i)? {
        Value::Int(n) => Ok(n),
        Value::UInt(n) => i64::try_from(n).map_err(|_| f.error("integer out of range")),
        _ => Err(f.error("expected an int argument")),
    }
}

pub(super) fn ok_bool<'c, 'v>(b: bool) -> Out<'c, 'v> {
    Ok(CowVal::owned(CelBool::from(b)))
}

pub(super) fn ok_str<'c, 'v>(s: String) -> Out<'c, 'v> {
    Ok(CowVal::owned(CelString::from(s)))
}

pub(super) fn ok_value<'c, 'v>(v: Value) -> Out<'c, 'v> {
    Ok(CowVal::Owned(Box::<dyn Val>::try_from(v)?))
}
