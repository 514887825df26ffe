using QService.Runtime.Scoring;

namespace QService.Engine.Caching;

/// <summary>
/// One model's cache of computed token prefixes, in blocks of <see cref="BlockSize"/> tokens chained from the
/// start of a sequence (a block is found by its parent and its own tokens, so equal prefixes share blocks
/// across requests and callers, as in vLLM's prefix caching). A block holds the backend's keys and values
/// for its positions and the log-probabilities of its tokens where a pass computed them. Bounded in bytes:
/// least recently used leaf blocks are evicted first, never one in use by the running pass. A lookup says what
/// the pass reads and computes (<see cref="CacheHit"/>); storing the pass's blocks counts what the hit saved.
/// Chains start from one root per RoPE regime (<see cref="Backends.IScoringBackend.RopeRegime"/>): keys turned by one RoPE
/// (longrope's short factors) are never found by a pass in another (its long ones). Used only on the model-owner thread.
/// </summary>
internal sealed class PrefixCache(long maxBytes, int blockSize) : IDisposable
{
    sealed class Block(long id, int regime, Block? parent, int[] tokens, ICachedBlock contents, float[] logprobs)
    {
        public long Id { get; } = id;
        public int Regime { get; } = regime;
        public Block? Parent { get; } = parent;
        public int[] Tokens { get; } = tokens;
        /// <summary>The backend's keys and values for the block's positions.</summary>
        public ICachedBlock Contents { get; } = contents;
        /// <summary>Log-probability of each token given everything before it; NaN where no pass computed it.</summary>
        public float[] Logprobs { get; } = logprobs;
        public int Children { get; set; }
        public LinkedListNode<Block>? Recency { get; set; }
    }

    /// <summary>A block's parent (0: the root) and tokens; the regime tells the roots apart (a child's is its parent's).</summary>
    readonly record struct BlockKey(int Regime, long ParentId, int[] Tokens)
    {
        public bool Equals(BlockKey other) => Regime == other.Regime && ParentId == other.ParentId && Tokens.AsSpan().SequenceEqual(other.Tokens);
        public override int GetHashCode()
        {
            var hash = new HashCode();
            hash.Add(Regime);
            hash.Add(ParentId);
            foreach (int t in Tokens) hash.Add(t);
            return hash.ToHashCode();
        }
    }

    readonly Dictionary<BlockKey, Block> _blocks = [];
    /// <summary>Most recently used first.</summary>
    readonly LinkedList<Block> _recency = new();
    readonly HashSet<Block> _inUse = [];
    long _nextId = 1;

    public int BlockSize { get; } = blockSize;
    public long MaxBytes { get; } = maxBytes;
    public long Bytes { get; private set; }
    public long Evictions { get; private set; }
    public int Count => _blocks.Count;
    long _hitTokens, _computedTokens;

    /// <summary>What the hits of passes that ended (<see cref="Insert"/>) served and computed, and the evictions so far.</summary>
    public CacheCounts Counts => new(_hitTokens, _computedTokens, Evictions);

    /// <summary>
    /// The longest cached prefix of whole blocks computed in RoPE <paramref name="regime"/> whose log-probabilities are known
    /// from <paramref name="firstTarget"/> on, short of the last token (every pass computes at least one position). Its blocks
    /// are marked in use until <see cref="EndPass"/>.
    /// </summary>
    public CacheHit Lookup(int[] tokens, int firstTarget, int regime = 0)
    {
        var path = CachedChain(tokens, tokens.Length - 1, regime);
        // Stop before the first block whose needed log-probabilities no pass has computed.
        int usable = path.Count;
        for (int b = 0; b < path.Count && usable == path.Count; b++)
            for (int j = 0; j < BlockSize; j++)
                if (b * BlockSize + j >= firstTarget && float.IsNaN(path[b].Logprobs[j])) { usable = b; break; }
        path.RemoveRange(usable, path.Count - usable);

        int length = path.Count * BlockSize;
        var logprobs = new float[Math.Max(0, length - firstTarget)];
        for (int p = firstTarget; p < length; p++) logprobs[p - firstTarget] = path[p / BlockSize].Logprobs[p % BlockSize];
        foreach (var block in path)
        {
            _inUse.Add(block);
            Touch(block);
        }
        return new CacheHit(tokens, length, Math.Max(firstTarget, length), [.. path.Select(b => b.Contents)], logprobs, BlockSize, regime);
    }

    /// <summary>
    /// How many leading tokens (whole blocks of <paramref name="regime"/>, at most <paramref name="maxLength"/>) are cached, without marking
    /// anything used.
    /// </summary>
    public int CachedLength(int[] tokens, int maxLength, int regime = 0) => CachedChain(tokens, maxLength, regime).Count * BlockSize;

    /// <summary>
    /// The cached blocks of <paramref name="regime"/> that begin <paramref name="tokens"/>, in order, covering at most
    /// <paramref name="maxLength"/> tokens.
    /// </summary>
    List<Block> CachedChain(int[] tokens, int maxLength, int regime)
    {
        var chain = new List<Block>();
        for (int start = 0; start + BlockSize <= maxLength; start += BlockSize)
        {
            if (!_blocks.TryGetValue(new BlockKey(regime, chain.Count == 0 ? 0 : chain[^1].Id, tokens[start..(start + BlockSize)]), out var block)) break;
            chain.Add(block);
        }
        return chain;
    }

    /// <summary>
    /// Stores the blocks the pass of <paramref name="hit"/> computed after it, with the log-probabilities it computed
    /// (of positions hit.FirstComputed..), counts what the hit served, then evicts down to the budget. Takes
    /// ownership of <paramref name="newBlocks"/> (a block cached already, by another item of the pass, is disposed).
    /// </summary>
    public void Insert(CacheHit hit, IReadOnlyList<ICachedBlock> newBlocks, float[] computed)
    {
        var (tokens, cachedLength, firstComputed) = (hit.Tokens, hit.ReusableLength, hit.FirstComputed);
        _hitTokens += hit.PastLength;
        _computedTokens += tokens.Length - hit.PastLength;
        // The cached prefix the pass continued is still there: its blocks were in use, so none was evicted.
        var prefix = CachedChain(tokens, cachedLength, hit.Regime);
        if (prefix.Count * BlockSize != cachedLength)
            throw new InvalidOperationException($"the cached prefix of {cachedLength} tokens is gone before its pass ended. This is a bug.");
        Block? parent = prefix.LastOrDefault();
        for (int b = 0; b < newBlocks.Count; b++)
        {
            int start = cachedLength + b * BlockSize;
            var key = new BlockKey(hit.Regime, parent?.Id ?? 0, tokens[start..(start + BlockSize)]);
            var logprobs = new float[BlockSize];
            for (int j = 0; j < BlockSize; j++)
            {
                int p = start + j;
                logprobs[j] = p >= firstComputed && p - firstComputed < computed.Length ? computed[p - firstComputed] : float.NaN;
            }
            if (_blocks.TryGetValue(key, out var existing))
            {
                newBlocks[b].Dispose();
                for (int j = 0; j < BlockSize; j++)
                    if (float.IsNaN(existing.Logprobs[j])) existing.Logprobs[j] = logprobs[j];
                parent = existing;
            }
            else
            {
                var block = new Block(_nextId++, hit.Regime, parent, key.Tokens, newBlocks[b], logprobs);
                _blocks[key] = block;
                if (parent != null) parent.Children++;
                Bytes += block.Contents.Bytes;
                parent = block;
            }
            _inUse.Add(parent);
            Touch(parent);
        }
        Evict();
    }

    /// <summary>The running pass is done with its blocks: they may be evicted again.</summary>
    public void EndPass()
    {
        _inUse.Clear();
        Evict();
    }

    void Touch(Block block)
    {
        if (block.Recency != null) _recency.Remove(block.Recency);
        block.Recency = _recency.AddFirst(block);
    }

    /// <summary>Least recently used leaves first (a block with cached children is their prefix), never a block in use.</summary>
    void Evict()
    {
        var node = _recency.Last;
        while (Bytes > MaxBytes && node != null)
        {
            var previous = node.Previous;
            var block = node.Value;
            if (block.Children == 0 && !_inUse.Contains(block))
            {
                Remove(block);
                Evictions++;
                // Its parent may have just become an evictable leaf: look from the end again.
                previous = _recency.Last;
            }
            node = previous;
        }
    }

    void Remove(Block block)
    {
        _blocks.Remove(new BlockKey(block.Regime, block.Parent?.Id ?? 0, block.Tokens));
        _recency.Remove(block.Recency!);
        block.Recency = null;
        if (block.Parent != null) block.Parent.Children--;
        Bytes -= block.Contents.Bytes;
        block.Contents.Dispose();
    }

    public void Dispose()
    {
        foreach (var block in _blocks.Values) block.Contents.Dispose();
        _blocks.Clear();
        _recency.Clear();
        Bytes = 0;
    }
}
