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
  // removes the temporary cloud assemblies that each Template.fromStack leaves
  setupFilesAfterEnv: ['aws-cdk-lib/testhelpers/jest-autoclean'],
  // a synthesized cloud assembly is never a source of tests or modules
  modulePathIgnorePatterns: ['<rootDir>/cdk.out'],
};
