// Lint and format in one pass, as Effect's own repository does: typescript-eslint's recommended
// rules, dprint (through @effect/eslint-plugin, offline: the formatter is an npm wasm package) for
// layout, and a hard 120-column limit for what dprint cannot wrap (long strings, comments).
import * as effectEslint from "@effect/eslint-plugin"
import stylistic from "@stylistic/eslint-plugin"
import tseslint from "typescript-eslint"

export default [
  { ignores: ["**/node_modules/**", "**/dist/**", "**/.data/**", "test-output/**", "packages/api/static/**"] },
  ...tseslint.configs.recommended,
  ...effectEslint.configs.dprint,
  {
    plugins: { "@stylistic": stylistic },
    rules: {
      "@effect/dprint": ["error", {
        config: {
          indentWidth: 2,
          lineWidth: 120,
          semiColons: "asi",
          quoteStyle: "alwaysDouble",
          trailingCommas: "never",
          operatorPosition: "maintain",
          "arrowFunction.useParentheses": "force"
        }
      }],
      "@stylistic/max-len": ["error", { code: 120, ignoreUrls: true, ignoreRegExpLiterals: true }],
      // Effect code names unused generator parameters and destructured rest fields with a leading underscore.
      "@typescript-eslint/no-unused-vars": ["error", {
        argsIgnorePattern: "^_",
        varsIgnorePattern: "^_",
        ignoreRestSiblings: true
      }],
      // `any` is kept for the few places that inspect foreign values (driver errors, JSON); each says why.
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-namespace": "off",
      "@typescript-eslint/no-empty-object-type": "off"
    }
  }
]
