//! Per-request working data of actions, one value per type, so the state has no per-action field.

use std::any::{Any, TypeId};
use std::collections::HashMap;

/// A small map from a type to one value of it, like `http::Extensions`: each action keys its
/// data (fetched keys, the edge's sign-in verdict, ...) by a type private to its own file, so
/// no other code can read or clobber it.
#[derive(Default)]
pub(crate) struct Scratch {
    values: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl Scratch {
    /// The value of type `T`, if one was put.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// Puts `value`, replacing the previous value of its type.
    pub fn put<T: Any + Send + Sync>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Box::new(value));
    }

    /// Takes the value of type `T` out, if one was put.
    pub fn take<T: Any + Send + Sync>(&mut self) -> Option<T> {
        let boxed = self.values.remove(&TypeId::of::<T>())?;
        boxed.downcast().ok().map(|b| *b)
    }
}

#[cfg(test)]
mod tests {
    use super::Scratch;

    #[derive(Debug, PartialEq)]
    struct A(u32);
    #[derive(Debug, PartialEq)]
    struct B(u32);

    #[test]
    fn one_value_per_type() {
        let mut s = Scratch::default();
        s.put(A(1));
        s.put(B(2));
        s.put(A(3));
        assert_eq!(s.get::<A>(), Some(&A(3)));
        assert_eq!(s.take::<B>(), Some(B(2)));
        assert_eq!(s.get::<B>(), None);
    }
}
