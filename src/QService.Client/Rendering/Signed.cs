using System.Globalization;

namespace QService.Client.Rendering;

public static class Signed
{
    /// <summary>"+0.123" / "-0.123"; a value that rounds to zero is "+0.000", never "-0.000".</summary>
    public static string Format(double value, int decimals = 4)
    {
        double rounded = Math.Round(value, decimals);
        return (rounded < 0 ? "-" : "+") + Math.Abs(rounded).ToString("F" + decimals, CultureInfo.InvariantCulture);
    }
}
