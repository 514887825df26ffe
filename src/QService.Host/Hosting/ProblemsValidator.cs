using Microsoft.Extensions.Options;

namespace QService.Host.Hosting;

/// <summary>Options validation from the engine's own list of problems (<see cref="Engine.OptionsProblems"/>).</summary>
sealed class ProblemsValidator<T>(Func<T, IEnumerable<string>> problems) : IValidateOptions<T> where T : class
{
    public ValidateOptionsResult Validate(string? name, T options)
    {
        var found = problems(options).ToList();
        return found.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(found);
    }
}
