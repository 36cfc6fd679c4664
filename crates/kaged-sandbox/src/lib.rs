//! `sandbox` compiles a cage policy into bubblewrap argv (design §7). It never decides policy;
//! it compiles what it is given and refuses what would escape.
