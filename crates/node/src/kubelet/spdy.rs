//! SPDY/3.1
