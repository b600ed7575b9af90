"""attnforge's kernel generator: variant TOML (data) -> generated/*.cu, variants.hpp, masks.hpp,
manifest.json. Run as `python3 -m codegen`; see `python3 -m codegen --help`."""
