//! Text helpers: `lower`, `upper`, and ngrok's `split`. cel's strings extension supplies the
//! rest (`charAt`, `indexOf`, `replace`, `substring`, `format`, `reverse`, `strings.quote`, …).

use super::args::{count, int_arg, ok_str, ok_value, str_arg, Out};
use cel::{ExecutionError, FunctionContext, Value};
use std::sync::Arc;

pub(super) fn map_str<'c, 'v>(
    f: &mut FunctionContext<'c, 'v>,
    op: impl Fn(&str) -> String,
) -> Out<'c, 'v> {
    ok_str(op(str_arg(f, 0)?))
}

/// The name `split` calls are rewritten to at compile time: ngrok's split, not cel's.
pub(crate) const SPLIT: &str = "sluiceSplit";

/// `s.split()`, `s.split(sep)`, `s.split(sep, n)` as ngrok documents them: no separator splits
/// on runs of whitespace; `n` keeps the first `n` pieces of the full split (`'a,b,c'.split(',',
/// 2)` is `['a', 'b']`, where cel-go would give `['a', 'b,c']`); a negative `n` keeps all, 0
/// none.
pub(super) fn split<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let text = str_arg(f, 0)?;
    let pieces: Vec<Value> = match count(f) {
        1 => text.split_whitespace().map(Value::from).collect(),
        2 | 3 => {
            let sep = str_arg(f, 1)?;
            let all: Vec<&str> = if sep.is_empty() {
                text.split_terminator("").skip(1).collect()
            } else {
                text.split(sep).collect()
            };
            let keep = if count(f) == 3 { int_arg(f, 2)? } else { -1 };
            let keep = usize::try_from(keep).unwrap_or(usize::MAX);
            all.into_iter().take(keep).map(Value::from).collect()
        }
        n => return Err(ExecutionError::invalid_argument_count(3, n)),
    };
    ok_value(Value::List(Arc::new(pieces)))
}
