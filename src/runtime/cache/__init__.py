"""tines.runtime.cache: KV memory. `KVPool` owns the K/V tensors and their free slots,
`SlotTable` maps each running sequence's positions to slots, and `RadixCache` indexes computed
prefixes by token ids so requests that share a prefix share its slots (LRU eviction of unlocked
leaves). The scheduler is the only caller."""
