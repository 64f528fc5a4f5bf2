#![no_std]
// The library target exists so that vrrp-userspace can name this crate as a build dependency
// (aya-build rebuilds the object when it changes); the program lives in main.rs.
