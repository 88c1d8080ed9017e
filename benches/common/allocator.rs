//! The global allocator `tenantctl` runs with (`src/main.rs`), so that a benchmark
//! measures the product as it runs.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
