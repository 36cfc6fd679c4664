//! `session` owns sessions: processes on PTYs, their scrollback and their viewers (design §6).
//! It never checks auth; callers hand it an already-authorised identity.
