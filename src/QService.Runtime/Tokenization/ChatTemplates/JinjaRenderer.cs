using System.Collections.Concurrent;
using System.Globalization;
using Acornima.Ast;
using Jint;
using Jint.Native;
using Jint.Runtime;

namespace QService.Runtime.Tokenization;

/// <summary>
/// Renders one Jinja template with the vendored @huggingface/jinja run by Jint, through jinja-bridge.js (the shims).
/// A Jint engine is not thread-safe: each render rents an engine of its own from a pool (each holds the template
/// parsed once); an engine that hit a bound is dropped, not reused.
/// </summary>
internal sealed class JinjaRenderer
{
    static readonly Prepared<Script> Library = Prepare("vendor.huggingface-jinja.cjs");
    static readonly Prepared<Script> Bridge = Prepare("jinja-bridge.js");

    readonly string _source;
    readonly TimeProvider _clock;
    readonly ChatRenderLimits _limits;
    readonly ConcurrentBag<(Engine Engine, JsValue Bridge)> _idle = [];

    /// <exception cref="ChatTemplateException">The engine cannot parse the template (Failed, with its message).</exception>
    public JinjaRenderer(string source, TimeProvider clock, ChatRenderLimits limits)
    {
        // Jinja reads templates with every line ending as "\n" (its lexer normalises newlines); the library does not.
        _source = source.Replace("\r\n", "\n").Replace('\r', '\n');
        _clock = clock;
        _limits = limits;
        _idle.Add(Create());
    }

    /// <summary>Renders with the variables as one JSON object; a refusal or failure is a <see cref="ChatTemplateException"/>.</summary>
    public string Render(string variablesJson)
    {
        var lease = _idle.TryTake(out var idle) ? idle : Create();
        JsValue result;
        try
        {
            result = lease.Engine.Invoke(lease.Bridge.Get("render"), lease.Bridge, [variablesJson]);
        }
        catch (Exception e) when (e is StatementsCountOverflowException or TimeoutException or MemoryLimitExceededException
            or RecursionDepthOverflowException)
        {
            throw new ChatTemplateException(ChatTemplateFailure.TooLarge, $"rendering the chat template ran past its bounds ({Bound(e)})");
        }
        catch (JavaScriptException e)
        {
            throw new ChatTemplateException(ChatTemplateFailure.Failed, e.Message);
        }
        _idle.Add(lease);
        var parts = result.AsArray();
        string kind = parts[0].AsString(), text = parts[1].AsString();
        return kind switch
        {
            "ok" => text,
            "raised" => throw new ChatTemplateException(ChatTemplateFailure.Raised, text),
            _ => throw new ChatTemplateException(ChatTemplateFailure.Failed, text),
        };
    }

    static string Bound(Exception e) => e switch
    {
        StatementsCountOverflowException => "too many statements",
        TimeoutException => "took too long",
        MemoryLimitExceededException => "too much memory",
        _ => "nested too deep",
    };

    (Engine Engine, JsValue Bridge) Create()
    {
        var engine = new Engine(o => o.Culture(CultureInfo.InvariantCulture)
            .MaxStatements(_limits.MaxStatements)
            .TimeoutInterval(TimeSpan.FromSeconds(_limits.TimeoutSeconds))
            .LimitMemory(_limits.MaxMemoryBytes)
            .LimitRecursion(_limits.MaxRecursion));
        engine.SetValue("__qsStrftime", new Func<string, string>(format => PythonStrftime.Format(_clock.GetLocalNow(), format)));
        engine.Execute("var module = { exports: {} }; var exports = module.exports;");
        engine.Execute(Library);
        engine.Execute(Bridge);
        var bridge = engine.GetValue("qs");
        try
        {
            engine.Invoke(bridge.Get("parse"), bridge, [_source]);
        }
        catch (JavaScriptException e)
        {
            throw new ChatTemplateException(ChatTemplateFailure.Failed, $"the chat template does not parse: {e.Message}");
        }
        return (engine, bridge);
    }

    static Prepared<Script> Prepare(string resource)
    {
        using var stream = typeof(JinjaRenderer).Assembly.GetManifestResourceStream($"QService.Runtime.ChatTemplates.{resource}")
            ?? throw new InvalidOperationException($"the embedded resource {resource} is missing from QService.Runtime");
        using var reader = new StreamReader(stream);
        return Engine.PrepareScript(reader.ReadToEnd(), resource, strict: false);
    }
}
