namespace QService.Demo;

/// <summary>A prompt and a response in the review language.</summary>
public sealed record Review(string Product, string Prompt, string Response);

/// <summary>
/// A small language of product reviews with a programmatic reward: each clause "The {aspect} is {word}."
/// scores +1, 0 or -1. Most words carry their sentiment anywhere (great, awful, okay); a few are good only
/// in context: a long battery is good, a long delivery is bad; a cheap price is good, a cheap build is bad;
/// a loud speaker is good, a loud fan is bad; a short wait is good, a short battery is bad.
/// The reward is used only to make preference pairs and to evaluate; the models never see it.
/// </summary>
public static class ReviewLanguage
{
    public static readonly string[] Products = ["phone", "laptop", "camera", "blender", "speaker", "tablet", "watch", "kettle"];

    public static readonly string[] Aspects = ["battery", "screen", "delivery", "price", "build", "speaker", "fan", "wait"];

    // Few words, so that each (aspect, word) combination is seen often enough to learn from.
    static readonly string[] Positive = ["great", "excellent", "reliable"];
    static readonly string[] Negative = ["awful", "poor", "broken"];
    static readonly string[] Neutral = ["okay", "average"];

    /// <summary>Words whose sentiment depends on the aspect: aspect → +1/-1; other aspects: 0.</summary>
    static readonly Dictionary<string, Dictionary<string, int>> Contextual = new()
    {
        ["long"] = new() { ["battery"] = +1, ["delivery"] = -1, ["wait"] = -1 },
        ["short"] = new() { ["wait"] = +1, ["delivery"] = +1, ["battery"] = -1 },
        ["cheap"] = new() { ["price"] = +1, ["build"] = -1 },
        ["loud"] = new() { ["speaker"] = +1, ["fan"] = -1 },
    };

    /// <summary>The words whose sentiment depends on the aspect, with the aspects where it is +1 or -1.</summary>
    public static IReadOnlyDictionary<string, Dictionary<string, int>> ContextualWords => Contextual;

    public static string PromptFor(string product) => $"Review of the {product}:";

    /// <summary>A clause's sentiment: +1, 0 or -1.</summary>
    public static int ClauseReward(string aspect, string word)
    {
        if (Positive.Contains(word)) return 1;
        if (Negative.Contains(word)) return -1;
        if (Contextual.TryGetValue(word, out var byAspect)) return byAspect.GetValueOrDefault(aspect);
        return 0;
    }

    /// <summary>The true reward of a response: the sum of its clauses' sentiments (unparseable text scores per parsed clause).</summary>
    public static int Reward(string response)
    {
        int total = 0;
        foreach (var clause in response.Split('.', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var words = clause.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // "The {aspect} is {word}"
            if (words.Length == 4 && words[0] == "The" && words[2] == "is") total += ClauseReward(words[1], words[3]);
        }
        return total;
    }

    static readonly string[] Words = [.. Positive, .. Negative, .. Neutral, .. Contextual.Keys];

    /// <summary>
    /// A random review: 2 to 4 clauses over distinct aspects, good and bad words mixed at random. As in real
    /// text, word choice depends on the aspect: a context word is three times as likely with the aspects it
    /// describes (long: battery, delivery, wait), whatever its sentiment there. So a model of the language must
    /// carry the aspect to the word, which the policy then needs to tell a good "long" from a bad one.
    /// </summary>
    public static Review Sample(Random rng)
    {
        string product = Products[rng.Next(Products.Length)];
        int clauses = 2 + rng.Next(3);
        var aspects = Aspects.OrderBy(_ => rng.Next()).Take(clauses);
        string response = string.Concat(aspects.Select(a => $" The {a} is {Word(a, rng)}."));
        return new Review(product, PromptFor(product), response);
    }

    static string Word(string aspect, Random rng)
    {
        double Weight(string w) => Contextual.TryGetValue(w, out var byAspect) && byAspect.ContainsKey(aspect) ? 3 : 1;
        double pick = rng.NextDouble() * Words.Sum(Weight);
        foreach (var w in Words)
            if ((pick -= Weight(w)) < 0) return w;
        return Words[^1];
    }

    /// <summary>Two reviews of the same product with different true rewards: (better, worse).</summary>
    public static (Review Better, Review Worse) SamplePair(Random rng)
    {
        while (true)
        {
            var a = Sample(rng);
            var b = Sample(rng) with { Product = a.Product, Prompt = a.Prompt };
            int ra = Reward(a.Response), rb = Reward(b.Response);
            if (ra != rb) return ra > rb ? (a, b) : (b, a);
        }
    }
}
