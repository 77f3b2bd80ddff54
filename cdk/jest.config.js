/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    // tsconfig.json sets isolatedModules, so ts-jest only transpiles: type
    // checking is `npm run typecheck`'s job (and much faster done once).
    '^.+\\.tsx?$': 'ts-jest',
  },
  // Loading aws-cdk-lib and synthesizing take seconds on a busy 2-core CI
  // machine; the default 5 s made the first test of a file flaky.
  testTimeout: 60_000,
  // removes the temporary cloud assemblies that each Template.fromStack leaves
  setupFilesAfterEnv: ['aws-cdk-lib/testhelpers/jest-autoclean'],
  // a synthesized cloud assembly is never a source of tests or modules
  modulePathIgnorePatterns: ['<rootDir>/cdk.out'],
};
