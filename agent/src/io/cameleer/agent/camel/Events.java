package io.cameleer.agent.camel;

import io.cameleer.agent.Recorder;
import org.apache.camel.Exchange;
import org.apache.camel.spi.CamelEvent;
import org.apache.camel.spi.CamelEvent.ExchangeEvent;
import org.apache.camel.support.EventNotifierSupport;

/**
 * Counts redeliveries into the trace of the exchange redelivered. Camel
 * files redeliveries under failure events, so those stay on; every other
 * kind is left off.
 */
final class Events extends EventNotifierSupport {
    Events() {
        setIgnoreCamelContextEvents(true);
        setIgnoreRouteEvents(true);
        setIgnoreServiceEvents(true);
        setIgnoreExchangeCreatedEvent(true);
        setIgnoreExchangeCompletedEvent(true);
        setIgnoreExchangeSendingEvents(true);
        setIgnoreExchangeSentEvents(true);
        setIgnoreStepEvents(true);
    }

    @Override
    public boolean isEnabled(CamelEvent event) {
        return event.getType() == CamelEvent.Type.ExchangeRedelivery;
    }

    @Override
    public void notify(CamelEvent event) {
        if (!Recorder.on()) {
            return;
        }
        try {
            Exchange exchange = ((ExchangeEvent) event).getExchange();
            Cursor c = Cursor.of(exchange);
            if (c != null && c.trace != null && c.other(exchange) == null) {
                c.trace.redelivered();
            }
        } catch (Throwable e) {
            Recorder.fail(e);
        }
    }
}
