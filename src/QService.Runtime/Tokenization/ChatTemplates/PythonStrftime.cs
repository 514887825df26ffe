using System.Globalization;
using System.Text;

namespace QService.Runtime.Tokenization;

/// <summary>
/// Python's <c>datetime.strftime</c> in the C locale, as glibc formats it (the directives chat templates use, e.g.
/// Llama 3.2's "%d %b %Y", SmolLM3's "%d %B %Y"; glibc's '-' flag drops the padding, as in "%-d"). An unknown
/// directive is written as it stands, as glibc does.
/// </summary>
internal static class PythonStrftime
{
    public static string Format(DateTimeOffset time, string format)
    {
        var text = new StringBuilder(format.Length + 16);
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 == format.Length)
            {
                text.Append(format[i]);
                continue;
            }
            bool unpadded = format[i + 1] == '-' && i + 2 < format.Length;
            char directive = format[unpadded ? i + 2 : i + 1];
            string? value = Directive(time, directive, unpadded);
            if (value is null)
            {
                text.Append(format[i]);
                continue;
            }
            text.Append(value);
            i += unpadded ? 2 : 1;
        }
        return text.ToString();
    }

    static string? Directive(DateTimeOffset t, char directive, bool unpadded)
    {
        var c = CultureInfo.InvariantCulture;
        string Number(int value, int width) => unpadded ? value.ToString(c) : value.ToString(new string('0', width), c);
        int hour12 = t.Hour % 12 == 0 ? 12 : t.Hour % 12;
        return directive switch
        {
            'a' => t.ToString("ddd", c),
            'A' => t.ToString("dddd", c),
            'b' or 'h' => t.ToString("MMM", c),
            'B' => t.ToString("MMMM", c),
            'd' => Number(t.Day, 2),
            'e' => unpadded ? Number(t.Day, 1) : t.Day.ToString(c).PadLeft(2),
            'm' => Number(t.Month, 2),
            'y' => Number(t.Year % 100, 2),
            'Y' => t.Year.ToString(c),
            'H' => Number(t.Hour, 2),
            'I' => Number(hour12, 2),
            'M' => Number(t.Minute, 2),
            'S' => Number(t.Second, 2),
            'p' => t.Hour < 12 ? "AM" : "PM",
            'j' => Number(t.DayOfYear, 3),
            'F' => t.ToString("yyyy-MM-dd", c),
            'D' => t.ToString("MM/dd/yy", c),
            'T' => t.ToString("HH:mm:ss", c),
            'z' or 'Z' => "", // transformers formats datetime.now(), which has no time zone
            '%' => "%",
            _ => null,
        };
    }
}
