/**
 * Job transitions as telemetry Application Insights can query.
 *
 * Why OpenTelemetry and not `context.log`: the Node worker formats every `context.log` argument
 * into one message string before handing it to the host, so whatever object is logged reaches
 * Application Insights only as text in `traces.message`. A log record emitted through the
 * OpenTelemetry Logs API and exported by Azure Monitor's exporter becomes a `traces` row whose
 * attributes are its customDimensions. So each transition is written twice: a readable line
 * through `context.log` (the host's log stream, and the local host's console), and a record with
 * the event's fields as attributes, exported when APPLICATIONINSIGHTS_CONNECTION_STRING is set
 * (on Azure, the Function App's own setting). Without it, the Logs API's no-op logger drops the
 * record: nothing leaves the process.
 */
import type { InvocationContext } from '@azure/functions';
import type { Agent } from 'node:https';
import { ManagedIdentityCredential } from '@azure/identity';
import { AzureMonitorLogExporter } from '@azure/monitor-opentelemetry-exporter';
import { logs, SeverityNumber } from '@opentelemetry/api-logs';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import type { JobEvent } from '../jobs/job-events.js';

/** The instrumentation scope of Hoist's records (`customDimensions` shows it as the logger name). */
export const TELEMETRY_SCOPE = 'hoist';

type Level = 'info' | 'warn' | 'error';

const SEVERITY: Record<Level, SeverityNumber> = { info: SeverityNumber.INFO, warn: SeverityNumber.WARN, error: SeverityNumber.ERROR };

/**
 * Writes a job transition: `message` with the event's bytes and duration through the
 * invocation's log, and the event as a log record whose attributes Application Insights shows as
 * customDimensions (with the function's name and invocation id, to join with the host's rows).
 */
export function logJobEvent(context: InvocationContext, level: Level, message: string, event: JobEvent): void {
  context[level === 'info' ? 'log' : level](`${message} [${event.transition}; ${event.bytes} bytes; ${event.durationMs} ms since queued]`);
  logs.getLogger(TELEMETRY_SCOPE).emit({
    severityNumber: SEVERITY[level],
    severityText: level.toUpperCase(),
    body: message,
    attributes: { ...event, functionName: context.functionName, invocationId: context.invocationId },
  });
}

/** Options of {@link startTelemetry}. */
export interface TelemetryOptions {
  /** The HTTPS agent for the ingestion endpoint (tests: one trusting their CA). Default Node's. */
  agent?: Agent;
}

/**
 * Sends log records to Application Insights when APPLICATIONINSIGHTS_CONNECTION_STRING is set;
 * returns the provider (to flush at shutdown), or undefined when telemetry stays off. With
 * APPLICATIONINSIGHTS_AUTHENTICATION_STRING `Authorization=AAD[;ClientId=<id>]` (Application
 * Insights with local authentication disabled), records are sent with the managed identity.
 */
export function startTelemetry(env: Record<string, string | undefined> = process.env, options: TelemetryOptions = {}): LoggerProvider | undefined {
  const connectionString = env.APPLICATIONINSIGHTS_CONNECTION_STRING?.trim();
  if (!connectionString) return undefined;
  const auth = parseAuthenticationString(env.APPLICATIONINSIGHTS_AUTHENTICATION_STRING);
  const credential = auth && (auth.clientId ? new ManagedIdentityCredential({ clientId: auth.clientId }) : new ManagedIdentityCredential());
  const exporter = new AzureMonitorLogExporter({ connectionString, ...(credential && { credential }), ...(options.agent && { agent: options.agent }) });
  const provider = new LoggerProvider({ processors: [new BatchLogRecordProcessor(exporter)] });
  logs.setGlobalLoggerProvider(provider);
  return provider;
}

/** `Authorization=AAD;ClientId=…` (the documented form): undefined unless it asks for Entra ID. */
function parseAuthenticationString(value: string | undefined): { clientId?: string } | undefined {
  if (!value) return undefined;
  const parts = new Map(value.split(';').map((part) => {
    const at = part.indexOf('=');
    return [part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim()] as const;
  }));
  if (parts.get('authorization')?.toUpperCase() !== 'AAD') return undefined;
  const clientId = parts.get('clientid');
  return clientId ? { clientId } : {};
}
