//! placeholder: the mock carrier
