//! Agora executor SDK (placeholder until the executor API lands).
