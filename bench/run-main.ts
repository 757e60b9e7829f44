/** Runs a benchmark's `main` and exits: 0 when it finished, 1 (its error printed) when it threw. */
export function runMain(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
