//! ocicache natively: the wasmtime host of the `ocicache.wasm` component.

pub mod component;
