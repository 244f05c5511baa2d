/** One measured figure. `ratio` is value / baseline, both measured in the same run. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline: number | null;
  ratio: number | null;
  note?: string;
}

export interface Bench {
  name: string;
  /**
   * `only(part)` says whether to run a named part of the bench (`npm run bench -- engine:shapes`
   * runs only the parts of "engine" whose name contains "shapes"); a bench without parts ignores it.
   */
  run(only?: (part: string) => boolean): Promise<Figure[]>;
}
