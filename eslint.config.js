// @ts-check
const tseslint = require('typescript-eslint');
const { builtinModules } = require('node:module');

module.exports = tseslint.config(
  { ignores: ['node_modules/**', '.tcrawl/**', 'dist/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.js'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Workflow code is replayed: it must be deterministic. Only the workflow
    // SDK, type imports and other workflow files may be imported.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: builtinModules.flatMap((name) => [name, `node:${name}`]).map((name) => ({ name, message: 'Node built-ins are not deterministic: do I/O in an activity.' })),
          patterns: [
            { group: ['undici', 'pg', 'cheerio', '@temporalio/activity', '@temporalio/client', '@temporalio/worker'], message: 'Side effects belong in activities/.' },
            { group: ['../activities', '../activities/*', '../src/*'], allowTypeImports: true, message: 'Workflows may import types only from activities/ and src/.' },
          ],
        },
      ],
    },
  },
);
