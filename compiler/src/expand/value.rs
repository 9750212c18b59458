//! Values of the expression language and the environment that binds them.

use std::fmt;
use std::rc::Rc;

/// A value computed from a spec expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    List(Vec<Value>),
    None,
}

impl Value {
    /// How much the value holds: one per number, bool or none, one per byte of a string, and a
    /// list's items plus one. [`eval`](super::eval::eval) refuses values larger than
    /// [`MAX_VALUE_SIZE`](super::eval::MAX_VALUE_SIZE).
    pub fn size(&self) -> usize {
        match self {
            Value::Str(s) => s.len().max(1),
            Value::List(items) => items.iter().fold(1usize, |n, v| n.saturating_add(v.size())),
            _ => 1,
        }
    }

    /// The type's name as messages show it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bool(_) => "bool",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::None => "none",
        }
    }

    /// The value as an integer: ints, and floats that hold a whole number
    /// (so `planes * width / 64` works where it divides evenly).
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
            _ => None,
        }
    }

    /// The value as a float: ints and floats.
    pub fn as_float(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::None => write!(f, "none"),
            Value::List(items) => {
                write!(f, "[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, "]")
            }
        }
    }
}

/// An immutable chain of bindings; binding returns a new environment that shares its parent.
#[derive(Clone, Default)]
pub struct Env(Option<Rc<Frame>>);

struct Frame {
    name: String,
    value: Value,
    parent: Env,
}

impl Env {
    /// `self` plus one binding (shadowing any earlier one of the same name).
    pub fn bind(&self, name: impl Into<String>, value: Value) -> Env {
        Env(Some(Rc::new(Frame { name: name.into(), value, parent: self.clone() })))
    }

    /// The innermost binding of `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        let mut env = self;
        while let Some(frame) = &env.0 {
            if frame.name == name {
                return Some(&frame.value);
            }
            env = &frame.parent;
        }
        None
    }

    /// All bound names, innermost first.
    pub fn names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        let mut env = self;
        while let Some(frame) = &env.0 {
            names.push(frame.name.as_str());
            env = &frame.parent;
        }
        names
    }
}
