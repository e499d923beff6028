//! Integration tests of the R-Series simulator.
