// ESLint over every TypeScript file: the recommended rules of ESLint and typescript-eslint, and
// eslint-config-prettier last, so that layout is Prettier's alone (`npm run lint` runs both).
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'bench/dist/', 'bench/results/', 'node_modules/', 'client/demo/vendor/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'module' },
    rules: {
      // `_`-prefixed parameters and caught errors are deliberately unused (a callback's signature).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      eqeqeq: ['error', 'always'],
      // A `let` assigned once, after a closure that reads it was made, is the clearest way to write that.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      'no-console': ['error', { allow: ['info', 'warn', 'error'] }],
    },
  },
  // Plain JavaScript: Node's scripts, and the demo page that runs in a browser.
  { files: ['**/*.{js,mjs}'], languageOptions: { globals: globals.node } },
  { files: ['client/demo/**/*.js'], languageOptions: { globals: globals.browser } },
  // Tests and the bench read frames and reports of any shape; the product code does not get `any`.
  { files: ['test/**', 'bench/**'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  prettier,
);
