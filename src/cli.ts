/** The `continuum-webhooks` executable (bin/continuum-webhooks.js loads this). */
import { main } from "./program.js";

await main(process.argv);
