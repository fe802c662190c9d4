//! attnlab-eval: compares runs — loss curves, learned parameters, attention geometry, cost.
