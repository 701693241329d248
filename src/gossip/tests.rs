//! Seeded simulations live here.
