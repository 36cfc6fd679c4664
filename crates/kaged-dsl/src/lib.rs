//! `dsl` owns the project file format (design §9, ADR-0011). It parses and lints; it never
//! starts anything and never reads operator-local state beyond what it is handed.
