import { BadRequestException, Injectable } from '@nestjs/common';
import type { Cart, SampleSession } from './sample-session.js';

/** The shop's session work, shared by the JSON routes and the page's forms. */
@Injectable()
export class ShopService {
  /** Adds one to the counter; returns the new count. */
  count(session: SampleSession): number {
    const count = (session.get('count') ?? 0) + 1;
    session.set('count', count);
    return count;
  }

  /** Puts one `item` in the cart; returns the whole cart. */
  addToCart(session: SampleSession, item: string): Cart {
    const cart = session.setDefault('cart', { items: {} });
    cart.items[item] = (cart.items[item] ?? 0) + 1;
    // A change inside a nested value is invisible to the session: say so.
    session.modified = true;
    return cart;
  }

  /**
   * Writes `lastError`, then returns the error the route throws: the session
   * is still saved, and the error response carries its cookie, as in Flask.
   */
  failOrder(session: SampleSession): BadRequestException {
    session.set('lastError', 'the order failed');
    return new BadRequestException('Out of stock; your session remembers this failure.');
  }
}
