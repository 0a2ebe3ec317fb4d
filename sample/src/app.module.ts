import { Module } from '@nestjs/common';
import { SessionModule } from 'nest-session';
import { AuthController } from './auth.controller.js';
import { AuthService } from './auth.service.js';
import { PageController } from './page.controller.js';
import { sessionOptions } from './session-options.js';
import { ShopController } from './shop.controller.js';
import { ShopService } from './shop.service.js';

@Module({
  imports: [SessionModule.forRootAsync({ useFactory: () => sessionOptions() })],
  controllers: [PageController, AuthController, ShopController],
  providers: [AuthService, ShopService],
})
export class AppModule {}
