namespace QService.Engine.Sampling;

/// <summary>
/// One sample's own random stream (xoshiro256**, seeded through splitmix64 from the request's seed and the
/// sample's index): its draws depend on nothing else, so a seed gives the same samples alone or batched.
/// </summary>
internal sealed class SampleRandom
{
    ulong _s0, _s1, _s2, _s3;

    public SampleRandom(ulong seed, int index)
    {
        ulong x = seed ^ (0x9E3779B97F4A7C15UL * (ulong)(index + 1));
        _s0 = SplitMix(ref x); _s1 = SplitMix(ref x); _s2 = SplitMix(ref x); _s3 = SplitMix(ref x);
    }

    static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1), 53 random bits.</summary>
    public double NextDouble()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return (result >> 11) * (1.0 / (1UL << 53));
    }
}
