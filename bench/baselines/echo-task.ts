/**
 * The worker side of the piscina baselines: the "model" is the identity, so what is measured is
 * the cost of the thread hop and of the encoding around it.
 */

/** naive-piscina: the worker gets the body text, parses it and answers JSON text. */
export default function echoJsonText(body: string): string {
  return JSON.stringify(JSON.parse(body));
}

/** fastify-piscina: fastify has already parsed the body; the worker answers the value (cloned both ways). */
export function echoValue(input: unknown): unknown {
  return input;
}
